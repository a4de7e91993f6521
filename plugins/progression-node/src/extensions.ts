import { createExtensionPoint } from '@backstage/backend-plugin-api';
import { Deployer } from './deployers';
import { GateDefinition } from './gates';

/**
 * Adds gates to Progression.
 *
 * @public
 */
export interface ProgressionGatesExtensionPoint {
  addGate(...gates: GateDefinition<any>[]): void;
}

/**
 * The extension point a backend module uses to add gates.
 *
 * @public
 */
export const progressionGatesExtensionPoint =
  createExtensionPoint<ProgressionGatesExtensionPoint>({
    id: 'progression.gates',
  });

/**
 * Adds ways to deploy a release to a stage.
 *
 * @public
 */
export interface ProgressionDeployersExtensionPoint {
  addDeployer(...deployers: Deployer<any>[]): void;
}

/**
 * The extension point a backend module uses to add deployers.
 *
 * @public
 */
export const progressionDeployersExtensionPoint =
  createExtensionPoint<ProgressionDeployersExtensionPoint>({
    id: 'progression.deployers',
  });
