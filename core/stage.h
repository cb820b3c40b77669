/* stage.h - a campaign's files on a remote site: the site's path variables,
 * the campaign's directories there, the workflow's inputs going up, each
 * attempt's logs and outputs coming back. Used by adapters that run jobs
 * through a connection (slurm); the local adapter needs none of it.
 *
 * Layout on the site, under plan->dir (<scratch>/hpcport/<campaign>, see
 * plan.h):
 *   logs/    stdout and stderr of every attempt, named as plan.h says
 *   work/    plan->remote_workdir: every task runs here; inputs are uploaded
 *            here under their relative paths and outputs are written here
 * On this machine, in the campaign's local directory (hp_campaign_dir(), the
 * one `hpcport status` and `hpcport logs` read):
 *   state.db, logs/ (copies fetched from the site), staged (what was
 *   uploaded: size and mtime per file)
 * and outputs are fetched into the workflow's working directory
 * (wf->workdir), where a run on the local site would have written them: the
 * same workflow leaves the same files wherever it ran.
 *
 * Inputs: the relative paths in the tasks' `inputs` (relative to the
 * workflow's working directory), except those that some task declares as an
 * output (they are made on the site). Absolute inputs are the site's own
 * files and are not copied (`hpcport plan` warns about paths outside the
 * site's filesystems). A directory is copied as a tree. An input is uploaded
 * again only when its local size or mtime differs from the last upload, or
 * the site's copy is missing or has another size.
 *
 * Paths in site profiles may start with a variable ("$SCRATCH/x",
 * "${HOME}/x") that only the site knows; they are resolved once per
 * connection from the environment of a command run there (`env -0`; a login
 * shell's environment when the plain one lacks the variable) before any
 * remote path is used. #SBATCH lines and SFTP do not expand variables.
 *
 * Functions return 0 / -1 with err unless their comment says otherwise. */
#ifndef HP_STAGE_H
#define HP_STAGE_H

#include <stddef.h>
#include "adapter.h"
#include "conn.h"
#include "err.h"
#include "plan.h"

struct hp_stage;

/* Staging over conn (borrowed; must outlive the stage) for site. Runs
 * nothing yet. */
struct hp_stage *hp_stage_new(struct hp_conn *conn, const struct hp_site *site);
void hp_stage_free(struct hp_stage *st);

/* path with a leading $NAME or ${NAME} replaced by its value on the site
 * (new string); other paths are copied. The result must be absolute. NULL
 * with err (HP_ESITE) when the variable is not set there, naming the profile
 * value that uses it. */
char *hp_stage_expand(struct hp_stage *st, const char *path, struct hp_err *err);

/* Create plan->dir, its logs/ and plan->remote_workdir on the site, and
 * upload the inputs (see above). plan and local_dir are kept (borrowed)
 * for hp_stage_collect(). *uploaded (may be NULL) receives the number of
 * files sent. HP_EINPUT for an input that exists neither here nor as some
 * task's output. */
int hp_stage_prepare(struct hp_stage *st, const struct hp_plan *plan, const char *local_dir,
                     size_t *uploaded, struct hp_err *err);

/* Fetch what attempt spec of instance i left on the site: its stdout and
 * stderr into the local logs/, the instance's declared outputs into the
 * workflow's working directory. Files that are not there are skipped (a
 * task may fail before writing them). -1 when the site could not be asked
 * or a transfer failed. */
int hp_stage_collect(struct hp_stage *st, size_t i, const struct hp_jobspec *spec,
                     struct hp_err *err);

/* A path under remote_dir mapped to the same place under local_dir (new
 * string); other paths are copied. For log paths that plan.h builds from the
 * (remote) campaign directory. */
char *hp_stage_local_path(const char *remote_dir, const char *local_dir, const char *path);

#endif
