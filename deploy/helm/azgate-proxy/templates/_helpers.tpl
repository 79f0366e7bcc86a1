{{- define "azgate-proxy.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "azgate-proxy.labels" -}}
app.kubernetes.io/name: azgate-proxy
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "azgate-proxy.selector" -}}
app.kubernetes.io/name: azgate-proxy
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "azgate-proxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "azgate-proxy.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The names in-cluster clients reach the proxy by: its Service, short and long. */}}
{{- define "azgate-proxy.serviceNames" -}}
{{- $svc := include "azgate-proxy.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- toJson (concat (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns)) .Values.serverNames) -}}
{{- end -}}
