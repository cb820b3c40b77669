// provider.js - a real OpenID provider (node-oidc-provider) for hpcport's
// integration tests: device authorization grant (RFC 8628), refresh tokens
// (rotated), revocation, introspection and userinfo, on 127.0.0.1 only.
//
//   node provider.js PORT
//
// Environment (seconds): OIDC_ACCESS_TTL (default 60), OIDC_REFRESH_TTL
// (86400), OIDC_DEVICE_TTL (600), OIDC_INTERVAL (poll interval the device
// authorization response announces; default 1); OIDC_SLOW_DOWN=N turns the
// first N authorization_pending answers into slow_down (RFC 8628 3.5).
// With OIDC_TLS_CERT and OIDC_TLS_KEY (PEM files) it serves https, and the
// issuer is https://127.0.0.1:PORT. One public client,
// "hpcport" (no client secret: token_endpoint_auth_method none). Logging in
// uses the provider's development interactions: any login name, any password
// (tests/harness/oidc/approve.js plays that user).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node provider.js PORT');
  process.exit(2);
}
const num = (name, dflt) => {
  const v = process.env[name];
  return v ? Number(v) : dflt;
};
const tls = process.env.OIDC_TLS_CERT && process.env.OIDC_TLS_KEY;
const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'hpcport',
    token_endpoint_auth_method: 'none',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
  }],
  cookies: { keys: ['hpcport-test-cookie-key'] },
  scopes: ['openid', 'offline_access', 'profile'],
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
  },
  rotateRefreshToken: true,
  ttl: {
    AccessToken: num('OIDC_ACCESS_TTL', 60),
    RefreshToken: num('OIDC_REFRESH_TTL', 86400),
    DeviceCode: num('OIDC_DEVICE_TTL', 600),
    Grant: 86400 * 14,
    Session: 86400,
    Interaction: 3600,
    IdToken: 3600,
  },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id, name: id }; } };
  },
});

// node-oidc-provider does not announce a polling interval; RFC 8628 says 5 s
// then. Tests poll faster.
const interval = num('OIDC_INTERVAL', 1);
let slowDowns = num('OIDC_SLOW_DOWN', 0);
provider.use(async (ctx, next) => {
  await next();
  if (slowDowns > 0 && ctx.method === 'POST' && ctx.path === '/token' && ctx.body
      && ctx.body.error === 'authorization_pending') {
    slowDowns -= 1;
    ctx.body = { error: 'slow_down', error_description: 'polling too fast (test provider)' };
  }
  if (ctx.method === 'POST' && ctx.path === '/device/auth' && ctx.status === 200
      && ctx.body && typeof ctx.body === 'object') {
    ctx.body.interval = interval;
  }
});

const server = tls
  ? createServer({
    cert: readFileSync(process.env.OIDC_TLS_CERT), key: readFileSync(process.env.OIDC_TLS_KEY),
  }, provider.callback())
  : provider;
server.listen(port, '127.0.0.1', () => {
  console.log(`oidc provider listening on ${issuer}`);
});
