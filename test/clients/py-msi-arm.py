# Python's azure-identity (Debian python3-azure) ManagedIdentityCredential and
# azure-mgmt-resource, configured only by the environment `azgate proxy azure`
# prints. RESOURCE_ID set: ask for that identity (mi_res_id). Prints one JSON line.
import base64, json, os
from azure.identity import ManagedIdentityCredential
from azure.mgmt.resource import ResourceManagementClient

try:
    rid = os.environ.get("RESOURCE_ID")
    credential = ManagedIdentityCredential(identity_config={"mi_res_id": rid}) if rid else ManagedIdentityCredential()
    token = credential.get_token("https://management.azure.com/.default")
    payload = token.token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    groups = [g.name for g in ResourceManagementClient(credential, os.environ["SUBSCRIPTION"]).resource_groups.list()]
    print(json.dumps({"ok": True, "claims": claims, "expires_on": token.expires_on, "groups": groups}))
except Exception as e:  # report, do not crash: the test reads the message
    print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e)}))
