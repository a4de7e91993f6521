// A minimal service that answers the smoke checks of its Progression
// pipeline (progression/smoke-checks.yaml) and exposes the request metrics
// its metric gates read. Replace it with the real service, keeping these
// routes.
const http = require('node:http');

const service = process.env.SERVICE_NAME || 'service';
const version = process.env.VERSION || 'dev';
const port = Number(process.env.PORT || 8080);

// http_requests_total{version, status}; Prometheus's scrape configuration
// adds the namespace and app labels the gates query by.
const requests = new Map();

function send(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  res.on('finish', () => {
    if (req.url === '/metrics') return;
    const key = String(res.statusCode);
    requests.set(key, (requests.get(key) || 0) + 1);
  });
  const url = new URL(req.url, 'http://localhost');
  if (req.method === 'GET' && url.pathname === '/healthz') {
    return send(res, 200, { status: 'ok' });
  }
  if (req.method === 'GET' && url.pathname === '/api/version') {
    return send(res, 200, { service, version });
  }
  if (req.method === 'GET' && url.pathname === '/api/db-status') {
    // Check the service's real dependencies here.
    return send(res, 200, { connected: true });
  }
  if (req.method === 'POST' && url.pathname === '/api/test-action') {
    return send(res, 201, { ok: true });
  }
  if (req.method === 'GET' && url.pathname === '/metrics') {
    const lines = ['# TYPE http_requests_total counter'];
    for (const [status, count] of requests) {
      lines.push(
        `http_requests_total{version="${version}",status="${status}"} ${count}`,
      );
    }
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
    return res.end(`${lines.join('\n')}\n`);
  }
  return send(res, 404, { error: 'not found' });
});

server.listen(port, () => {
  console.log(`${service} ${version} listening on ${port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
