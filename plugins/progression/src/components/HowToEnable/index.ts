export { HowToEnable } from './HowToEnable';
