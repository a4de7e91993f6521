import { ObjectService } from '../api/ObjectService';
import { ResourceType } from '../api/resources';

/** Deletes an object that a user or another controller may have deleted first. */
export function deleteIfPresent(
  objects: ObjectService,
  type: ResourceType,
  namespace: string | undefined,
  name: string,
) {
  try {
    objects.delete(type, namespace, name);
  } catch {
    // Already gone: nothing to do.
  }
}
