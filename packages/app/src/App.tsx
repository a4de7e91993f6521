import { createApp } from '@backstage/frontend-defaults';
import catalogPlugin from '@backstage/plugin-catalog/alpha';
import { kubernetesNamespaceFilterModule } from '@progression-io/backstage-plugin-progression/alpha';
import { navModule } from './modules/nav';
import { homeModule } from './modules/home';

export default createApp({
  // kubernetesNamespaceFilterModule: a stage card's Pods link opens the
  // Kubernetes tab on that stage's namespace only.
  features: [
    catalogPlugin,
    navModule,
    homeModule,
    kubernetesNamespaceFilterModule,
  ],
});
