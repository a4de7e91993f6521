import { wrapServer } from '@backstage/backend-openapi-utils/testUtils';
import { Express } from 'express';
import { Server } from 'node:http';

/**
 * `wrapServer` puts a proxy in front of the app that checks every request and
 * response against the package's OpenAPI spec. Its proxy forwards to
 * `localhost` and prefers IPv6 when `::1` answers; on machines whose
 * /etc/hosts has no `::1 localhost` (ours) that lookup fails. Listening on
 * IPv4 only keeps the proxy on 127.0.0.1.
 */
export async function wrapServerOnIPv4(app: Express): Promise<Server> {
  const listen = app.listen.bind(app);
  app.listen = ((port: number) =>
    listen(port, '127.0.0.1')) as typeof app.listen;
  return wrapServer(app);
}
