{{/* vim: set filetype=mustache: */}}

{{/* ---------------------------------------------------------------- labels
     Kubernetes recommended labels. Selector labels are the immutable subset. */}}

{{- define "users-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "users-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "users-service.labels" -}}
helm.sh/chart: {{ include "users-service.chart" . }}
{{ include "users-service.selectorLabels" . }}
app.kubernetes.io/version: {{ include "users-service.imageTag" . | quote }}
app.kubernetes.io/part-of: users-service
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of one component. Usage: include "users-service.componentLabels" (list . "web") */}}
{{- define "users-service.componentLabels" -}}
{{ include "users-service.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* The database pod template's labels: its own image's version and no chart label, so an app
     or chart upgrade leaves the StatefulSet's pod template, and so the database, untouched. */}}
{{- define "users-service.databasePodLabels" -}}
{{ include "users-service.componentSelectorLabels" (list . "database") }}
app.kubernetes.io/version: {{ .Values.mysql.image.tag | quote }}
app.kubernetes.io/part-of: users-service
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "users-service.componentSelectorLabels" -}}
{{ include "users-service.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "users-service.annotations" -}}
{{- with .Values.commonAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* A workload's annotations: its own (helm hook annotations, for instance), then commonAnnotations.
     Usage: include "users-service.workloadAnnotations" (list . (dict "helm.sh/hook" "test")) */}}
{{- define "users-service.workloadAnnotations" -}}
{{- $ann := merge (dict) (index . 1) ((index . 0).Values.commonAnnotations | default dict) -}}
{{- with $ann -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}
