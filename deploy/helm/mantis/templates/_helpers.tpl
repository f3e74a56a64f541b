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

{{- /* The PostgreSQL pool of a pod of service `.svc` named `.name` (`.root`: the chart's
root): its own `databaseMaxConnections` when set, else infra's; refused outside 1-1000. */ -}}
{{- define "mantis.pool" -}}
{{- $pool := .root.Values.infra.databaseMaxConnections -}}
{{- $from := "infra.databaseMaxConnections" -}}
{{- if hasKey .svc "databaseMaxConnections" -}}
{{- $pool = .svc.databaseMaxConnections -}}
{{- $from = printf "services.%s.databaseMaxConnections" .name -}}
{{- end -}}
{{- if or (kindIs "invalid" $pool) (lt (int $pool) 1) (gt (int $pool) 1000) -}}
{{- fail (printf "%s must be 1 to 1000, got %v" $from $pool) -}}
{{- end -}}
{{- int $pool -}}
{{- end -}}

{{- /* Refuses replica counts the services cannot use, and more PostgreSQL connections than
the server takes: each service at its most replicas, plus the pods a rolling update adds (a
quarter more, at least one; none for a StatefulSet or a Recreate). */ -}}
{{- define "mantis.checkReplicas" -}}
{{- $consumers := include "mantis.consumers" . | fromYaml -}}
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
{{- $connections := 0 -}}
{{- $perPod := list -}}
{{- range $name, $svc := .Values.services -}}
{{- $pool := int (include "mantis.pool" (dict "root" $ "svc" $svc "name" $name)) -}}
{{- $n := int (include "mantis.mostReplicas" $svc) -}}
{{- $surge := max 1 (div (add $n 3) 4) -}}
{{- if and (eq $name "ingestion") (or (dig "persistence" "enabled" false $svc) (le $n 1)) -}}
{{- $surge = 0 -}}
{{- end -}}
{{- $pods := add $n $surge -}}
{{- $connections = add $connections (mul $pods $pool) -}}
{{- $perPod = append $perPod (printf "%s %d × %d" $name (int $pods) $pool) -}}
{{- end -}}
{{- $limit := int .Values.infra.postgresMaxConnections -}}
{{- if and (gt $limit 0) (gt (int $connections) $limit) -}}
{{- fail (printf "the services could open %d PostgreSQL connections at their most replicas during a rolling update (pods × pool: %s), more than infra.postgresMaxConnections (%d): lower infra.databaseMaxConnections or a service's databaseMaxConnections, or raise the server's max_connections (or put a pooler such as PgBouncer in front) and infra.postgresMaxConnections with it" (int $connections) (join ", " $perPod) $limit) -}}
{{- end -}}
{{- end -}}
