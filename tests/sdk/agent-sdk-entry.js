// The entry of the agent page's browser build of Twilio's worker SDK (`npm run
// bundle-agent-sdk` → agent-sdk.js, served by Taskyard with TASKYARD_AGENT_SDK). Twilio
// publishes no browser build of TaskRouter.js 2.x; this bundles the npm package as it is.
export { Worker, Supervisor, Workspace } from 'twilio-taskrouter';
