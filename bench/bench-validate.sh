#!/bin/sh
# bench-validate: `hpcport validate` of 1,000 site profiles in one call.
# Target: under 0.5 s. Prints the time and, as a reference measured in the
# same run, the time `cat` takes to read the same files.
set -eu
HP=${HPCPORT:-./build/cli/hpcport}
N=${1:-1000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
i=0
while [ $i -lt $N ]; do
    cat > "$dir/site$i.yaml" <<EOP
name: site$i
description: generated profile $i
scheduler:
  type: slurm
  account: acct$i
  partitions:
    - {name: cpu, max_walltime: 48h, max_nodes: 512, cores_per_node: 128}
    - {name: gpu, max_walltime: 12h, gpus_per_node: 4, gpu_type: a100}
  default_partition: cpu
  max_queued_jobs: 5000
login: {host: login$i.example.org, user: alice, jump: [bastion.example.org]}
network: {login: proxy, compute: none, proxy: "http://proxy:3128", no_proxy: [localhost]}
filesystems: {home: /home/alice, scratch: /scratch/alice, shared: [/project]}
nodes: {cores: 128, memory: 512G, gpus: 4, gpu_type: a100}
container: {runtime: apptainer}
launcher: srun
modules: [cudatoolkit, cray-mpich]
EOP
    i=$((i + 1))
done
now() { date +%s.%N; }
t0=$(now); cat "$dir"/*.yaml > /dev/null; t1=$(now)
"$HP" validate -q --type site "$dir"/*.yaml
t2=$(now)
awk -v n="$N" -v a="$t0" -v b="$t1" -v d="$t2" \
    'BEGIN { printf "bench-validate: %d site profiles: hpcport validate %.3f s (target < 0.5 s); cat of the same files %.3f s\n", n, d - b, b - a }'
