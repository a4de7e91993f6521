/*
 * autocannon's setupClient for a load that walks a list of paths, loaded by
 * its worker thread (hence plain JavaScript): each connection walks
 * BENCH_WALK_PATHS (a JSON array) from its own starting point, the
 * connections' starting points evenly apart, so that concurrent requests
 * ask for different entities and a pass of the list's length reads each
 * path once.
 */
let connection = 0;
module.exports = client => {
  const paths = JSON.parse(process.env.BENCH_WALK_PATHS);
  const connections = Number(process.env.BENCH_WALK_CONNECTIONS);
  const start =
    (connection++ * Math.max(1, Math.floor(paths.length / connections))) %
    paths.length;
  client.setRequests(
    [...paths.slice(start), ...paths.slice(0, start)].map(p => ({
      method: 'GET',
      path: p,
    })),
  );
};
