{{- define "azgate-agent.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "azgate-agent.labels" -}}
app.kubernetes.io/name: azgate-agent
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "azgate-agent.selector" -}}
app.kubernetes.io/name: azgate-agent
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "azgate-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "azgate-agent.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "azgate-agent.tokenSecret" -}}
{{- default (printf "%s-join-token" (include "azgate-agent.fullname" .)) .Values.joinTokenSecret.name -}}
{{- end -}}

{{/* caPin as a string or a list (teleport-kube-agent's shape), as a list. */}}
{{- define "azgate-agent.caPins" -}}
{{- $pins := list -}}
{{- if kindIs "slice" .Values.caPin -}}{{- $pins = .Values.caPin -}}{{- else if .Values.caPin -}}{{- $pins = list .Values.caPin -}}{{- end -}}
{{- toJson $pins -}}
{{- end -}}

{{- define "azgate-agent.validate" -}}
{{- $roles := splitList "," (toString .Values.roles) -}}
{{- range $roles -}}
{{- if ne (trim .) "app" -}}
{{- fail (printf "roles: %q is not served by azgate agents; use roles: app" (trim .)) -}}
{{- end -}}
{{- end -}}
{{- if not .Values.proxyAddr -}}
{{- fail "proxyAddr is required (host:port of the azgate proxy)" -}}
{{- end -}}
{{- if and (not .Values.joinTokenSecret.create) (not .Values.joinTokenSecret.name) -}}
{{- fail "joinTokenSecret.name is required when joinTokenSecret.create is false (an existing Secret with the key auth-token)" -}}
{{- end -}}
{{- if not .Values.apps -}}
{{- fail "apps: list at least one app (name, cloud: Azure)" -}}
{{- end -}}
{{- $cloud := default "Azure" (index .Values.apps 0).cloud -}}
{{- range .Values.apps -}}
{{- if ne (default "Azure" .cloud) $cloud -}}
{{- fail (printf "apps: %q has cloud %q but %q has %q; one agent serves one cloud (its identity lives there): install a release per cloud" .name (default "Azure" .cloud) (index $.Values.apps 0).name $cloud) -}}
{{- end -}}
{{- end -}}
{{- end -}}
