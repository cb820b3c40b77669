/* script.h - the parts of a job script that do not depend on the scheduler.
 *
 * Every value that came from a workflow or a --set flag is quoted with
 * hp_sq_quote(); only the site's `setup` lines (written by the profile's
 * author, like a module environment) are emitted verbatim. */
#ifndef HP_SCRIPT_H
#define HP_SCRIPT_H

#include "adapter.h"
#include "site.h"

/* Append: setup lines, module loads, exports, cd to the work dir, and the
 * command wrapped in the site's container runtime and launcher. When
 * redirect is non-zero, stdout/stderr go to the spec's paths (for back ends
 * that do not redirect themselves). */
void hp_script_body(const struct hp_jobspec *spec, const struct hp_site *site,
                    int use_launcher, int redirect, struct hp_buf *out);

/* Append the command (argv or sh -c script) wrapped in container and launcher
 * as quoted shell words, without a trailing newline. */
void hp_script_command(const struct hp_jobspec *spec, const struct hp_site *site,
                       int use_launcher, struct hp_buf *out);

/* Append "# hpcport: campaign C, instance I, attempt N" with every byte that
 * could end the comment line escaped (ids carry user values). */
void hp_script_comment(const struct hp_jobspec *spec, struct hp_buf *out);

#endif
