import { ApiError } from './errors';
import { KubeObject } from '../store/Store';

/** `metadata.name=x,metadata.namespace!=y` and the few other fields we index. */
export function parseFieldSelector(
  selector: string | null,
): (o: KubeObject) => boolean {
  if (!selector) return () => true;
  const terms = selector
    .split(',')
    .filter(Boolean)
    .map(term => {
      const m = term.match(/^([^=!]+)(==|=|!=)(.*)$/);
      if (!m) throw ApiError.badRequest(`invalid field selector: '${term}'`);
      const [, field, op, value] = m;
      const readers: Record<string, (o: KubeObject) => string | undefined> = {
        'metadata.name': o => o.metadata.name,
        'metadata.namespace': o => o.metadata.namespace,
        'status.phase': o => o.status?.phase,
        'spec.nodeName': o => o.spec?.nodeName,
      };
      const read = readers[field];
      if (!read)
        throw ApiError.badRequest(`field label not supported: ${field}`);
      return (o: KubeObject) =>
        op === '!=' ? read(o) !== value : read(o) === value;
    });
  return o => terms.every(t => t(o));
}
