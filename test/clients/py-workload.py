# Python's azure-identity (Debian python3-azure) exchanging a projected
# service-account token, in its own process. Prints one JSON line.
import base64, json, os, sys
from azure.identity import ManagedIdentityCredential

scope = sys.argv[1]
try:
    # With AZURE_AUTHORITY_HOST, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE set,
    # ManagedIdentityCredential does the Workload ID token exchange.
    token = ManagedIdentityCredential(client_id=os.environ["AZURE_CLIENT_ID"]).get_token(scope)
    payload = token.token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    print(json.dumps({"ok": True, "claims": claims, "expires_on": token.expires_on}))
except Exception as e:  # report, do not crash: the test reads the message
    print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e)}))
