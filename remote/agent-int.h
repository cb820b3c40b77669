/* agent-int.h - internals shared by agent.c and agent-store.c. */
#ifndef HP_AGENT_INT_H
#define HP_AGENT_INT_H

#include <sqlite3.h>
#include "agent.h"

/* Open (create == 1: create DIR and the schema) DIR/tasks.db. */
int hp_store_open(const char *dir, int create, sqlite3 **out, struct hp_err *err);
int hp_store_exec(sqlite3 *db, const char *sql, struct hp_err *err);

/* The pilot jobs of an agent (agent-pilots.c): read the pilot
 * configuration cfgpath (agent.h), open the site's adapter with the local
 * transport. connect: the agent's HOST:PORT for TCP pilots, or NULL with
 * spool. */
struct hp_pilotmgr;
struct hp_pilotmgr *hp_pilotmgr_new(const char *dir, sqlite3 *db, const char *cfgpath,
                                    const char *connect, const char *spool,
                                    struct hp_err *err);
/* Follow the pilot jobs and submit more while tasks are queued (queued,
 * leased: the task counts), within the configured limits; cancel pilots
 * not yet started once nothing is left. seen(arg, "pN") says whether pilot
 * N is in touch: a pilot job the scheduler runs but that has not been heard
 * of for longer than the heartbeat timeout after it took tasks (lost its
 * way back to the agent) is not counted as a live pilot. */
void hp_pilotmgr_tick(struct hp_pilotmgr *m, long queued, long leased,
                      int (*seen)(void *arg, const char *pilot), void *arg);
void hp_pilotmgr_free(struct hp_pilotmgr *m);

#endif
