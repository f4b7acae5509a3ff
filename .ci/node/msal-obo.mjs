// A real MSAL client against the sandbox's Entra emulator: msal-node's ConfidentialClientApplication
// does On-Behalf-Of for three users, three rounds each (interleaved, as a busy API would), and the
// emulator's counters must show exactly 3 token requests: msal-node answers the rest from its cache,
// which it keys by the account that the token response's client_info names. Each answer must be the
// right user's token (a shared cache slot would hand one user's token to another).
//
// node .ci/node/msal-obo.mjs READY_FILE   (NODE_EXTRA_CA_CERTS = the sandbox's ca.pem)
import { readFileSync } from "node:fs";
import { ConfidentialClientApplication, LogLevel } from "@azure/msal-node";

const ready = JSON.parse(readFileSync(process.argv[2], "utf8"));
const entra = ready.entra_url;
const tenant = ready.tenant_id;
const env = ready.gateway_env;
const users = ready.users.slice(0, 3);
const ROUNDS = 3;
const EXPECTED_TOKEN_CALLS = Number(process.env.EXPECTED_TOKEN_CALLS ?? users.length);

async function control(method, path, body) {
  const resp = await fetch(`${entra}/_emulator/${path}`, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!resp.ok) throw new Error(`${method} ${path}: ${resp.status} ${await resp.text()}`);
  return resp.json();
}

const claims = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString());

const cca = new ConfidentialClientApplication({
  auth: {
    clientId: env.PHOTO_GATEWAY_CLIENT_ID,
    clientSecret: env.PHOTO_GATEWAY_CLIENT_SECRET,
    authority: `${entra}/${tenant}`,
    // Not a Microsoft cloud: no instance discovery; metadata from the emulator's own
    // {authority}/v2.0/.well-known/openid-configuration.
    knownAuthorities: [new URL(entra).host],
  },
  system: {
    loggerOptions: {
      logLevel: LogLevel.Warning,
      piiLoggingEnabled: false,
      loggerCallback: (_level, message) => console.error(`msal: ${message}`),
    },
  },
});

// Each user's caller token (the assertion an API receives), minted by the emulator.
const assertions = new Map();
for (const u of users) {
  const t = await control("POST", "tokens", { user: u.userPrincipalName });
  assertions.set(u.id, t.access_token);
}

const before = await control("GET", "counters");
let fromCache = 0;
for (let round = 1; round <= ROUNDS; round++) {
  for (const u of users) {
    const result = await cca.acquireTokenOnBehalfOf({
      oboAssertion: assertions.get(u.id),
      scopes: ["https://graph.microsoft.com/User.ReadWrite"],
    });
    const c = claims(result.accessToken);
    if (c.oid !== u.id) {
      throw new Error(`round ${round}: ${u.userPrincipalName} got a token for ${c.oid}`);
    }
    if (result.fromCache) fromCache++;
  }
}
const after = await control("GET", "counters");
const calls = after.token_requests - before.token_requests;
const total = ROUNDS * users.length;
console.log(
  `msal-node OBO: ${users.length} users x ${ROUNDS} rounds = ${total} acquisitions, ${calls} token requests, ${fromCache} from cache`,
);
if (calls !== EXPECTED_TOKEN_CALLS) {
  console.error(`expected ${EXPECTED_TOKEN_CALLS} token requests, saw ${calls}`);
  process.exit(1);
}
