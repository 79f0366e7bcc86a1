// @azure/ms-rest-nodeauth's loginWithAppServiceMSI (the credentials of the
// older @azure/arm-* SDKs, on ms-rest-js), then an ARM call through
// ms-rest-js's ServiceClient, in their own process, configured only by the
// environment `azgate proxy azure` prints: IDENTITY_ENDPOINT or MSI_ENDPOINT,
// and MSI_SECRET. CLIENT_ID set: asks for that identity (clientid).
// Prints one JSON line.
import { loginWithAppServiceMSI } from "@azure/ms-rest-nodeauth";
import { ServiceClient } from "@azure/ms-rest-js";

try {
  const credentials = await loginWithAppServiceMSI({ resource: "https://management.azure.com/", ...(process.env.CLIENT_ID ? { clientId: process.env.CLIENT_ID } : {}) });
  const token = await credentials.getToken();
  const claims = JSON.parse(Buffer.from(token.accessToken.split(".")[1], "base64url").toString());
  const res = await new ServiceClient(credentials).sendRequest({ method: "GET", url: `https://management.azure.com/subscriptions/${process.env.SUBSCRIPTION}/resourcegroups?api-version=2021-04-01` });
  if (res.status !== 200) throw Object.assign(new Error(`ARM answered ${res.status}: ${res.bodyAsText}`), { statusCode: res.status });
  const groups = JSON.parse(res.bodyAsText).value.map((g) => g.name);
  console.log(JSON.stringify({ ok: true, claims, groups }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, name: e.name, status: e.statusCode, message: e.message }));
}
