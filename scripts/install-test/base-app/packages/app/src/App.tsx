import { createApp } from '@backstage/frontend-defaults';
import catalogPlugin from '@backstage/plugin-catalog/alpha';
import { navModule } from './modules/nav';
import { homeModule } from './modules/home';

// The install test's starting point: the demo app without Progression.
export default createApp({
  features: [catalogPlugin, navModule, homeModule],
});
