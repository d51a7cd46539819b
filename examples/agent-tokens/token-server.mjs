// A minimal token endpoint, as an agent desktop's back end would serve it: the browser asks
// for a token for its logged-in agent, the server signs one with an API key.
//
//   npm install twilio
//   API_KEY_SID=SK… API_KEY_SECRET=… TASKYARD_ACCOUNT_SID=AC… WORKSPACE_SID=WS… node token-server.mjs
//   curl 'http://127.0.0.1:3000/token?worker=WK…'
//
// Authenticating the agent (which worker may they have a token for?) is your application's
// job; this example trusts the query string and must not be exposed as it is.
import http from 'node:http';
import twilio from 'twilio';

const { AccessToken } = twilio.jwt;
const { API_KEY_SID, API_KEY_SECRET, TASKYARD_ACCOUNT_SID, WORKSPACE_SID } = process.env;
const PORT = Number(process.env.PORT || 3000);

http.createServer((req, res) => {
  const url = new URL(req.url, `http://${req.headers.host}`);
  const worker = url.searchParams.get('worker');
  if (url.pathname !== '/token' || !worker) {
    res.writeHead(404).end();
    return;
  }
  const token = new AccessToken(TASKYARD_ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, {
    identity: worker,
    ttl: 3600,
  });
  token.addGrant(new AccessToken.TaskRouterGrant({
    workspaceSid: WORKSPACE_SID,
    workerSid: worker,
    role: 'worker',
  }));
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ token: token.toJwt() }));
}).listen(PORT, () => console.log(`token server on http://127.0.0.1:${PORT}/token?worker=WK…`));
