export { progressionPlugin as default } from './plugin';
