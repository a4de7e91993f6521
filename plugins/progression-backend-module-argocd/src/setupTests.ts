// The Kubernetes plugin's ServiceAccountStrategy, which gives Progression
// its cluster credentials, loads @kubernetes/client-node with a dynamic
// import(), which Jest runs only with --experimental-vm-modules. Here it
// is handed the module the way its own tests do (injectedKubernetesClient);
// the strategy's code runs unchanged. Production loads it by import().
jest.mock('@backstage/plugin-kubernetes-backend', () => {
  const actual = jest.requireActual('@backstage/plugin-kubernetes-backend');
  class ServiceAccountStrategy extends actual.ServiceAccountStrategy {
    constructor() {
      super();
      (this as any).injectedKubernetesClient = jest.requireActual(
        '@kubernetes/client-node',
      );
    }
  }
  return { ...actual, ServiceAccountStrategy };
});

export {};
