// Resources outside the core group are named `<plural>.<group>` in errors,
// as the API server names them (`deployments.apps "web" not found`).
const GROUPS: Record<string, string> = {
  deployments: 'apps',
  replicasets: 'apps',
  jobs: 'batch',
  networkpolicies: 'networking.k8s.io',
  applications: 'argoproj.io',
};
const qualified = (resource: string) =>
  GROUPS[resource] ? `${resource}.${GROUPS[resource]}` : resource;

/**
 * An API error, answered as a Kubernetes `Status` object, the shape
 * client-go and @kubernetes/client-node decode.
 */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toStatus() {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      ...(this.details && { details: this.details }),
      code: this.code,
    };
  }

  static notFound(resource: string, name: string) {
    return new ApiError(
      404,
      'NotFound',
      `${qualified(resource)} "${name}" not found`,
      {
        name,
        kind: resource,
      },
    );
  }

  static alreadyExists(resource: string, name: string) {
    return new ApiError(
      409,
      'AlreadyExists',
      `${qualified(resource)} "${name}" already exists`,
      { name, kind: resource },
    );
  }

  static conflict(resource: string, name: string, why: string) {
    return new ApiError(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${qualified(
        resource,
      )} "${name}": ${why}`,
      { name, kind: resource },
    );
  }

  static invalid(kind: string, name: string, causes: string[]) {
    return new ApiError(
      422,
      'Invalid',
      `${kind} "${name}" is invalid: ${causes.join(', ')}`,
      { name, kind, causes: causes.map(message => ({ message })) },
    );
  }

  static badRequest(message: string) {
    return new ApiError(400, 'BadRequest', message);
  }

  static unauthorized() {
    return new ApiError(401, 'Unauthorized', 'Unauthorized');
  }

  static gone(message: string) {
    return new ApiError(410, 'Expired', message);
  }

  static methodNotAllowed(message: string) {
    return new ApiError(405, 'MethodNotAllowed', message);
  }

  static unsupportedMediaType(contentType: string) {
    return new ApiError(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: application/json, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got ${contentType})`,
    );
  }
}
