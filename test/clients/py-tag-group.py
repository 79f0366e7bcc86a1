# A deployment script as a user writes one: DefaultAzureCredential and an ARM
# write (tags on a resource group), configured by nothing but the environment
# `azgate exec` gives it. Its argument is the tag's value (a test passes a
# secret-looking one: it must reach Azure, and never azgate's audit log).
# Prints one JSON line.
import json, os, sys
from azure.identity import DefaultAzureCredential
from azure.mgmt.resource import ResourceManagementClient

try:
    client = ResourceManagementClient(DefaultAzureCredential(), os.environ["ARM_SUBSCRIPTION_ID"])
    group = client.resource_groups.create_or_update("myResourceGroup", {"location": "westeurope", "tags": {"release": sys.argv[1]}})
    print(json.dumps({"ok": True, "name": group.name}))
except Exception as e:  # report, do not crash: the test reads the message
    print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e)}))
