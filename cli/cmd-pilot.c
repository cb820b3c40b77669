/* cmd-pilot.c - hpcport pilot: run a campaign's tasks inside an allocation
 * (remote/pilot.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "pilot.h"
#include "util.h"
#include "banned.h"

static const char usage[] =
    "usage: hpcport pilot (--agent HOST:PORT --secret-file FILE | --spool DIR)\n"
    "                     [--cores N] [--gpus LIST] [--nodes N] [--walltime D]\n"
    "                     [--launcher srun|mpiexec|none] [--grace S] [--idle S]\n"
    "                     [--heartbeat S] [--reconnect S] [--id ID]\n";

static const char help[] =
    "\n"
    "Run tasks of a campaign agent (hpcport agent) in slots of cores and GPUs until\n"
    "the campaign has no task left. Tasks are taken in batches and never started if\n"
    "they cannot finish before the allocation ends. SIGTERM: take nothing new, hand\n"
    "back what has not started, let running tasks finish for --grace seconds, report\n"
    "and exit.\n"
    "\n"
    "options:\n"
    "    -a, --agent HOST:PORT   the agent (its DIR/agent.json)\n"
    "    --secret-file FILE      the campaign secret (the agent's DIR/secret)\n"
    "    -s, --spool DIR         exchange tasks through the agent's spool instead\n"
    "    -c, --cores N           core slots (default: online CPUs)\n"
    "    -g, --gpus LIST         GPU ids to hand out, e.g. 0,1,2,3; a task's GPUs are\n"
    "                            pinned with CUDA_VISIBLE_DEVICES and ROCR_VISIBLE_DEVICES\n"
    "    --nodes N               nodes of the allocation (default SLURM_JOB_NUM_NODES\n"
    "                            or 1)\n"
    "    -t, --walltime D        time left in the allocation (default from\n"
    "                            SLURM_JOB_END_TIME, else unknown)\n"
    "    --launcher L            runs tasks of more than one node: srun, mpiexec, or\n"
    "                            none (run on this node; default srun inside Slurm)\n"
    "    --grace S               seconds running tasks get after SIGTERM (default 30)\n"
    "    --idle S                exit after S seconds with nothing to run (default 60)\n"
    "    --heartbeat S           seconds between heartbeats (default 5)\n"
    "    --reconnect S           keep trying a lost agent this long (default 300)\n"
    "    --id ID                 pilot id (default HOST-PID)\n"
    "    -h, --help              show this help\n";

enum { OPT_SECRET = 1, OPT_NODES, OPT_LAUNCHER, OPT_GRACE, OPT_IDLE, OPT_HB, OPT_RECONNECT,
       OPT_ID };

static int num(const char *s, int min, int max, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

int cmd_pilot(int argc, char **argv)
{
    static const struct option opts[] = {
        { "agent", required_argument, NULL, 'a' },
        { "secret-file", required_argument, NULL, OPT_SECRET },
        { "spool", required_argument, NULL, 's' },
        { "cores", required_argument, NULL, 'c' },
        { "gpus", required_argument, NULL, 'g' },
        { "nodes", required_argument, NULL, OPT_NODES },
        { "walltime", required_argument, NULL, 't' },
        { "launcher", required_argument, NULL, OPT_LAUNCHER },
        { "grace", required_argument, NULL, OPT_GRACE },
        { "idle", required_argument, NULL, OPT_IDLE },
        { "heartbeat", required_argument, NULL, OPT_HB },
        { "reconnect", required_argument, NULL, OPT_RECONNECT },
        { "id", required_argument, NULL, OPT_ID },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    struct hp_pilot_opts o = { .cores = ncpu > 0 ? (int)ncpu : 1, .nodes = 1, .grace = 30,
                               .idle = 60, .heartbeat = 5, .reconnect = 300 };
    const char *nodes_env = getenv("SLURM_JOB_NUM_NODES");
    if (nodes_env && num(nodes_env, 1, 1000000, &o.nodes) < 0)
        o.nodes = 1;
    o.launcher = getenv("SLURM_JOB_ID") ? "srun" : "none";
    int c, bad = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+a:s:c:g:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': o.agent = optarg; break;
        case OPT_SECRET: o.secret_file = optarg; break;
        case 's': o.spool = optarg; break;
        case 'c': bad = num(optarg, 1, 1 << 20, &o.cores); break;
        case 'g': o.gpus = optarg; break;
        case OPT_NODES: bad = num(optarg, 1, 1000000, &o.nodes); break;
        case 't':
            o.walltime = (long)hp_parse_duration(optarg);
            bad = o.walltime <= 0 ? -1 : 0;
            break;
        case OPT_LAUNCHER:
            o.launcher = optarg;
            if (strcmp(optarg, "srun") && strcmp(optarg, "mpiexec") && strcmp(optarg, "none"))
                return hp_cli_usage_error(usage, "unknown --launcher '%s' (srun, mpiexec, "
                                          "none)", optarg);
            break;
        case OPT_GRACE: bad = num(optarg, 0, 86400, &o.grace); break;
        case OPT_IDLE: bad = num(optarg, 0, 1 << 30, &o.idle); break;
        case OPT_HB: bad = num(optarg, 1, 86400, &o.heartbeat); break;
        case OPT_RECONNECT: bad = num(optarg, 0, 1 << 30, &o.reconnect); break;
        case OPT_ID: o.id = optarg; break;
        case 'h':
            fputs(usage, stdout);
            fputs(help, stdout);
            return 0;
        default:
            return hp_cli_usage_error(usage, "unknown or incomplete option '%s'",
                                      argv[optind - 1]);
        }
        if (bad)
            return hp_cli_usage_error(usage, "bad value '%s' for %s", optarg,
                                      argv[optind - 1]);
    }
    if (optind < argc)
        return hp_cli_usage_error(usage, "unexpected argument '%s'", argv[optind]);
    if (!!o.agent == !!o.spool)
        return hp_cli_usage_error(usage, "give either --agent HOST:PORT or --spool DIR");
    if (o.agent && !o.secret_file)
        return hp_cli_usage_error(usage, "--agent needs --secret-file FILE");
    struct hp_err err;
    hp_err_init(&err);
    long ran = 0;
    if (hp_pilot_run(&o, &ran, &err) < 0)
        return hp_cli_error(&err);
    hp_cli_log(1, "pilot: ran %ld tasks", ran);
    return 0;
}
