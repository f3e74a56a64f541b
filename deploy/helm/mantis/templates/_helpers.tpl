{{- define "mantis.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mantis.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- include "mantis.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "mantis.labels" -}}
app.kubernetes.io/name: mantis
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- /*
What each consumer service reads: its consumer group, the topic and the topic's partitions
(crates/mantis-bus/src/topics.rs; the chart test compares them with the code). More replicas
than partitions would sit idle; KEDA scales on these groups' lag.
*/ -}}
{{- define "mantis.consumers" -}}
preprocessing:
  - { group: preprocessing, topic: sensor.raw, partitions: 12 }
features:
  - { group: features, topic: sensor.windowed, partitions: 12 }
anomaly:
  - { group: anomaly, topic: features.extracted, partitions: 6 }
rul:
  - { group: rul, topic: features.extracted, partitions: 6 }
orchestrator:
  - { group: orchestrator.anomaly, topic: anomaly.detected, partitions: 3 }
  - { group: orchestrator.rul, topic: rul.predicted, partitions: 3 }
{{- end -}}

{{- /* The services that read the decision rules (infra.rules_dir). */ -}}
{{- define "mantis.rulesReaders" -}}
[anomaly, orchestrator, gateway]
{{- end -}}

{{- /* The rules ConfigMap's data: the shipped rules/ files, each replaced by rules.files. */ -}}
{{- define "mantis.rulesData" -}}
{{- $shipped := dict -}}
{{- range $path, $_ := .Files.Glob "rules/*.toml" -}}
{{- $_ := set $shipped (base $path) ($.Files.Get $path) -}}
{{- end -}}
{{- range $name, $text := .Values.rules.files -}}
{{- if not (hasKey $shipped $name) -}}
{{- fail (printf "rules.files: %s is not a rules file (the services read %s)" $name (keys $shipped | sortAlpha | join ", ")) -}}
{{- end -}}
{{- if not $text -}}
{{- fail (printf "rules.files: %s is empty (leave it out for the shipped one)" $name) -}}
{{- end -}}
{{- end -}}
{{- range $name := keys $shipped | sortAlpha }}
{{ $name }}: {{ ternary (get $.Values.rules.files $name) (get $shipped $name) (hasKey $.Values.rules.files $name) | quote }}
{{- end -}}
{{- end -}}

{{- /* The most replicas a service (its values) may run: maxReplicas when autoscaled. */ -}}
{{- define "mantis.mostReplicas" -}}
{{- $auto := .autoscaling | default dict -}}
{{- if $auto.enabled -}}{{ int $auto.maxReplicas }}{{- else -}}{{ int .replicas }}{{- end -}}
{{- end -}}

{{- /* Refuses replica counts the services cannot use, and more PostgreSQL connections than
the server takes. */ -}}
{{- define "mantis.checkReplicas" -}}
{{- $consumers := include "mantis.consumers" . | fromYaml -}}
{{- $connections := 0 -}}
{{- $perPod := list -}}
{{- range $name, $svc := .Values.services -}}
{{- $pool := int ($svc.databaseMaxConnections | default $.Values.infra.databaseMaxConnections) -}}
{{- if lt $pool 1 -}}
{{- fail (printf "services.%s: databaseMaxConnections must be at least 1" $name) -}}
{{- end -}}
{{- $n := int (include "mantis.mostReplicas" $svc) -}}
{{- $connections = add $connections (mul $n $pool) -}}
{{- $perPod = append $perPod (printf "%s %d × %d" $name $n $pool) -}}
{{- end -}}
{{- $limit := int .Values.infra.postgresMaxConnections -}}
{{- if and (gt $limit 0) (gt (int $connections) $limit) -}}
{{- fail (printf "the services could open %d PostgreSQL connections at their most replicas (%s), more than infra.postgresMaxConnections (%d): lower infra.databaseMaxConnections or a service's databaseMaxConnections, or raise the server's max_connections (or put a pooler such as PgBouncer in front) and infra.postgresMaxConnections with it" (int $connections) (join ", " $perPod) $limit) -}}
{{- end -}}
{{- range $name, $svc := .Values.services -}}
{{- $auto := $svc.autoscaling | default dict -}}
{{- $most := int $svc.replicas -}}
{{- if $auto.enabled -}}
{{- $most = int $auto.maxReplicas -}}
{{- if gt (int $auto.minReplicas) $most -}}
{{- fail (printf "services.%s.autoscaling: minReplicas (%v) is above maxReplicas (%v)" $name $auto.minReplicas $auto.maxReplicas) -}}
{{- end -}}
{{- end -}}
{{- range (get $consumers $name | default list) -}}
{{- if gt $most (int .partitions) -}}
{{- fail (printf "services.%s: %d replicas, but its input topic %s has %d partitions: the others would sit idle" $name $most .topic (int .partitions)) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $name "ingestion") (dig "persistence" "enabled" false $svc) $auto.enabled -}}
{{- fail "services.ingestion: no autoscaling with persistence.enabled: a replica scaled away would keep the readings its edge buffer holds on its claim until scaled back; set replicas (each has a claim of its own), or disable persistence" -}}
{{- end -}}
{{- end -}}
{{- end -}}
