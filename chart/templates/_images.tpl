{{/* vim: set filetype=mustache: */}}

{{/* ---------------------------------------------------------------- images */}}

{{- define "users-service.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion | toString -}}
{{- end -}}

{{- define "users-service.image" -}}
{{- if and .Values.image.digest (toString .Values.image.tag) -}}
{{- /* repo:tag@digest: the digest decides what runs and the tag stays readable. It is also the
       exact reference skaffold pushes (skaffold.yaml sets all three), by which its file sync
       finds the pods to copy into. */ -}}
{{- printf "%s:%s@%s" .Values.image.repository (toString .Values.image.tag) .Values.image.digest -}}
{{- else if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "users-service.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{- define "users-service.mysqlImage" -}}
{{- if .Values.mysql.image.digest -}}
{{- printf "%s@%s" .Values.mysql.image.repository .Values.mysql.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.mysql.image.repository (toString .Values.mysql.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "users-service.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}
