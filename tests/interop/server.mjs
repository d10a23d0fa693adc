// A certified OpenID Provider (panva's oidc-provider) for tokenfix's
// interoperability tests, on loopback only.
//
//   node server.mjs [PORT]      (or PORT=...; 0 or nothing picks a free port)
//
// Once it listens it prints one line to stdout, which the tests wait for:
//
//   tokenfix-interop ready {"issuer":"http://127.0.0.1:PORT", ...}
//
// The JSON names what a client needs; the client secret comes from the
// environment (INTEROP_CLIENT_SECRET) and is never printed. The provider runs
// with its development interactions (plain login and consent forms that
// accept any user name and password) and keys made at start-up: it is a test
// fixture, never a deployment.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const HOST = '127.0.0.1';
const port = Number(process.argv[2] ?? process.env.PORT ?? 0);

const CLIENT_ID = 'tokenfix-interop';
const CLIENT_SECRET = process.env.INTEROP_CLIENT_SECRET ?? 'interop-client-secret';
// a second client whose token responses the tests' rules only break
const STRIPPED_CLIENT_ID = 'tokenfix-interop-stripped';
// never followed: the tests read the code from the redirect's Location
const REDIRECT_URI = 'http://127.0.0.1:9/callback';
// the API the access tokens are for (RFC 8707 resource indicator)
const RESOURCE = 'urn:tokenfix:interop-api';
const RESOURCE_SCOPE = 'api:read';
const ACCESS_TOKEN_TTL = 300;

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: 'interop', use: 'sig', alg: 'RS256' };
}

function client(clientId) {
  return {
    client_id: clientId,
    client_secret: CLIENT_SECRET,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
  };
}

function configuration() {
  return {
    clients: [client(CLIENT_ID), client(STRIPPED_CLIENT_ID)],
    jwks: { keys: [signingKey()] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    // any login is an account; the id token carries only `sub`
    async findAccount(ctx, sub) {
      return { accountId: sub, async claims() { return { sub }; } };
    },
    scopes: ['openid', 'offline_access', RESOURCE_SCOPE],
    features: {
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // every authorization and token request is for the one API, so its
        // access tokens are JWTs (without a resource they would be opaque)
        defaultResource: async () => RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resourceIndicator) => {
          if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: RESOURCE_SCOPE,
            audience: RESOURCE,
            accessTokenTTL: ACCESS_TOKEN_TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    // a refresh token only for offline_access, which oidc-provider keeps in
    // the grant only when the authorization request asked for prompt=consent
    async issueRefreshToken(ctx, client, code) {
      return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
    },
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 24 * 60 * 60,
      Grant: 24 * 60 * 60,
      Interaction: 10 * 60,
      Session: 24 * 60 * 60,
    },
  };
}

const server = createServer();
server.listen(port, HOST, () => {
  const issuer = `http://${HOST}:${server.address().port}`;
  const provider = new Provider(issuer, configuration());
  server.on('request', provider.callback());

  const ready = {
    issuer,
    client_id: CLIENT_ID,
    stripped_client_id: STRIPPED_CLIENT_ID,
    redirect_uri: REDIRECT_URI,
    resource: RESOURCE,
    scope: `openid offline_access ${RESOURCE_SCOPE}`,
    access_token_ttl: ACCESS_TOKEN_TTL,
  };
  process.stdout.write(`tokenfix-interop ready ${JSON.stringify(ready)}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
