/**
 * Sets a condition as the controllers do: lastTransitionTime changes only
 * with the status, lastUpdateTime with any change (or always, with `touch`,
 * which progress reporting uses to restart the progress deadline).
 */
export function upsertCondition(
  conditions: any[] | undefined,
  c: { type: string; status: string; reason: string; message: string },
  touch = false,
) {
  const list = [...(conditions ?? [])];
  const t = new Date().toISOString();
  const i = list.findIndex(x => x.type === c.type);
  if (i === -1) {
    list.push({ ...c, lastUpdateTime: t, lastTransitionTime: t });
  } else {
    const prev = list[i];
    const same =
      prev.status === c.status &&
      prev.reason === c.reason &&
      prev.message === c.message;
    list[i] = {
      ...c,
      lastUpdateTime: same && !touch ? prev.lastUpdateTime : t,
      lastTransitionTime:
        prev.status === c.status ? prev.lastTransitionTime : t,
    };
  }
  return list;
}
