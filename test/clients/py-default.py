# What a user's own script looks like: DefaultAzureCredential and an ARM call,
# configured by nothing but the environment `azgate exec` gives it (Python's
# azure-identity from Debian's python3-azure). Prints one JSON line, including
# whether the user's own client secret reached this process.
import base64, json, os
from azure.identity import DefaultAzureCredential
from azure.mgmt.resource import ResourceManagementClient

try:
    credential = DefaultAzureCredential()
    token = credential.get_token("https://management.azure.com/.default")
    payload = token.token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    groups = [g.name for g in ResourceManagementClient(credential, os.environ["ARM_SUBSCRIPTION_ID"]).resource_groups.list()]
    print(json.dumps({"ok": True, "claims": claims, "groups": groups, "secret_seen": "AZURE_CLIENT_SECRET" in os.environ}))
except Exception as e:  # report, do not crash: the test reads the message
    print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e), "secret_seen": "AZURE_CLIENT_SECRET" in os.environ}))
