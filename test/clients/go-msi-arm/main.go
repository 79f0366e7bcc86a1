// A Go program as a platform team writes one with go-autorest (Debian's
// golang-github-azure-go-autorest-dev): adal's managed-identity token, then
// an ARM GET with it, configured by nothing but the environment (MSI_ENDPOINT,
// HTTPS_PROXY, SSL_CERT_FILE). RESOURCE_ID names the identity when set.
// Prints one JSON line.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/Azure/go-autorest/autorest/adal"
)

type result struct {
	OK      bool                   `json:"ok"`
	Message string                 `json:"message,omitempty"`
	Claims  map[string]interface{} `json:"claims,omitempty"`
	Groups  []string               `json:"groups,omitempty"`
}

func fail(err error) {
	out, _ := json.Marshal(result{OK: false, Message: err.Error()})
	fmt.Println(string(out))
	os.Exit(0)
}

func main() {
	options := &adal.ManagedIdentityOptions{IdentityResourceID: os.Getenv("RESOURCE_ID")}
	spt, err := adal.NewServicePrincipalTokenFromManagedIdentity("https://management.azure.com/", options)
	if err != nil {
		fail(err)
	}
	if err := spt.Refresh(); err != nil {
		fail(err)
	}
	token := spt.OAuthToken()
	claims := map[string]interface{}{}
	if parts := strings.Split(token, "."); len(parts) == 3 {
		if raw, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			_ = json.Unmarshal(raw, &claims)
		}
	}
	sub := os.Getenv("ARM_SUBSCRIPTION_ID")
	req, _ := http.NewRequest("GET", "https://management.azure.com/subscriptions/"+sub+"/resourcegroups?api-version=2021-04-01", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fail(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		fail(fmt.Errorf("ARM answered %d", res.StatusCode))
	}
	var page struct {
		Value []struct {
			Name string `json:"name"`
		} `json:"value"`
	}
	if err := json.NewDecoder(res.Body).Decode(&page); err != nil {
		fail(err)
	}
	groups := []string{}
	for _, g := range page.Value {
		groups = append(groups, g.Name)
	}
	out, _ := json.Marshal(result{OK: true, Claims: claims, Groups: groups})
	fmt.Println(string(out))
}
