import crypto from 'node:crypto';
import forge from 'node-forge';

/**
 * A self-signed certificate for 127.0.0.1 and localhost, made at start-up.
 * kubectl (client-go) sends no bearer token over plain HTTP, so the
 * simulator serves HTTPS for it; the kubeconfig carries this certificate as
 * its certificate authority, so nothing skips verification.
 */
export function selfSignedCertificate(
  hosts: string[] = ['127.0.0.1', 'localhost'],
) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
  });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(
    publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  );
  cert.serialNumber = `01${crypto.randomBytes(8).toString('hex')}`;
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 365 * 24 * 3600 * 1000);
  const subject = [{ name: 'commonName', value: 'kube-simulator' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true },
    {
      name: 'keyUsage',
      digitalSignature: true,
      keyEncipherment: true,
      keyCertSign: true,
    },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: hosts.map(h =>
        /^[\d.]+$/.test(h) ? { type: 7, ip: h } : { type: 2, value: h },
      ),
    },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keyPem), forge.md.sha256.create());
  return { key: keyPem, cert: forge.pki.certificateToPem(cert) };
}
