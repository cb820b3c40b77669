/* provenance.h - what produced a campaign's results.
 *
 * A provenance record is a JSON object (kept as text in the campaign state,
 * see hp_state_add_provenance) with:
 *   hpcport   {version, build}          the program that ran the engine
 *   host      {name, user}              where the engine ran
 *   workflow  {path, name, sha256}      the workflow file as it was read
 *   git       null (not in a repository) | {error} |
 *             {repository, commit, branch, remote, dirty, changes[], more_changes,
 *              untracked, workflow_file}
 *   site      {name, sources[], profile, catalog: null | {url, commit}}
 * Credentials never get in: passwords in URLs and values of keys named like
 * secrets are replaced by "***".
 *
 * git.dirty is true when a tracked file differs from the commit (in the index
 * or the working tree); untracked files are only counted. workflow_file is
 * "tracked", "modified", "untracked", "ignored" or "outside" (the file is not
 * in the repository's working tree). */
#ifndef HP_PROVENANCE_H
#define HP_PROVENANCE_H

#include <jansson.h>
#include "err.h"

struct hp_site;

/* The build of this hpcport: the version, and " (git DESCRIBE)" when it was
 * built from a git checkout. Static string. */
const char *hp_version_string(void);

/* Git facts about the repository holding path (a file or a directory): a new
 * object as described for "git" above, or json_null() when path is in no
 * repository. Errors reading a repository are reported in the object's
 * "error" member rather than failing. Never NULL. */
json_t *hp_provenance_git(const char *path);

/* The whole record for a run of workflow_path (may be NULL: read from
 * elsewhere) named workflow_name on site. Never NULL; the caller frees it. */
json_t *hp_provenance_collect(const char *workflow_path, const char *workflow_name,
                              const struct hp_site *site);

/* Copy of v with credentials removed (see above). */
json_t *hp_provenance_redact(const json_t *v);

#endif
