"""Issue an Access Token for one agent, as a real application's back end would.

Usage (after `pip install twilio`):

    python examples/agent-tokens/token.py WS… WK… [--ttl 3600] [--role worker]

It reads the account from TASKYARD_ACCOUNT_SID / TASKYARD_AUTH_TOKEN (or the development
account in ./taskyard-data/development-account.env), creates an API key the first time
(kept in ./agent-key.env — in a real app, create one key once and keep its secret with
your other secrets), and prints the token and the agent page's address.

The token is made exactly as for Twilio: twilio's AccessToken + TaskRouterGrant, signed with
the API key. Nothing here is specific to Taskyard except the base URL.
"""

import argparse
import os
from pathlib import Path

from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import TaskRouterGrant
from twilio.rest import Client

BASE_URL = os.environ.get("TASKYARD_URL", "http://127.0.0.1:8700")
KEY_FILE = Path("agent-key.env")


def read_env(path: Path) -> dict:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def account() -> tuple[str, str]:
    env = {**read_env(Path("taskyard-data/development-account.env")), **os.environ}
    return env["TASKYARD_ACCOUNT_SID"], env["TASKYARD_AUTH_TOKEN"]


def api_key(client: Client) -> tuple[str, str]:
    saved = read_env(KEY_FILE)
    if "API_KEY_SID" in saved:
        return saved["API_KEY_SID"], saved["API_KEY_SECRET"]
    key = client.new_keys.create(friendly_name="agent tokens")
    KEY_FILE.write_text(f"API_KEY_SID={key.sid}\nAPI_KEY_SECRET={key.secret}\n")
    KEY_FILE.chmod(0o600)
    return key.sid, key.secret


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workspace_sid")
    p.add_argument("worker_sid")
    p.add_argument("--ttl", type=int, default=3600, help="seconds (at most 86400)")
    p.add_argument("--role", default="worker", choices=["worker", "supervisor", "admin"])
    args = p.parse_args()

    account_sid, auth_token = account()
    client = Client(account_sid, auth_token)
    client.api.base_url = BASE_URL  # the only change from talking to Twilio
    key_sid, key_secret = api_key(client)

    token = AccessToken(account_sid, key_sid, key_secret, identity=args.worker_sid, ttl=args.ttl)
    token.add_grant(
        TaskRouterGrant(workspace_sid=args.workspace_sid, worker_sid=args.worker_sid, role=args.role)
    )
    jwt = token.to_jwt()
    print(jwt)
    print(f"\nAgent page: {BASE_URL}/agent#token={jwt}")


if __name__ == "__main__":
    main()
