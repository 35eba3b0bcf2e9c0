{{/* vim: set filetype=mustache: */}}

{{/* ---------------------------------------------------------------- names */}}

{{- define "users-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "users-service.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of a sub-object: <fullname>-<suffix>, the prefix cut so that StatefulSet pod names and
     hash-suffixed Job names stay within 63 characters. Usage: include "users-service.componentName" (list . "mysql") */}}
{{- define "users-service.componentName" -}}
{{- $ctx := index . 0 -}}
{{- printf "%s-%s" (include "users-service.fullname" $ctx | trunc 40 | trimSuffix "-") (index . 1) -}}
{{- end -}}

{{- define "users-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "users-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "users-service.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "users-service.mysqlName" -}}
{{- include "users-service.componentName" (list . "mysql") -}}
{{- end -}}

{{- define "users-service.configMapName" -}}
{{- include "users-service.componentName" (list . "config") -}}
{{- end -}}
