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
