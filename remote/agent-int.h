/* agent-int.h - internals shared by agent.c and agent-store.c. */
#ifndef HP_AGENT_INT_H
#define HP_AGENT_INT_H

#include <sqlite3.h>
#include "agent.h"

/* Open (create == 1: create DIR and the schema) DIR/tasks.db. */
int hp_store_open(const char *dir, int create, sqlite3 **out, struct hp_err *err);
int hp_store_exec(sqlite3 *db, const char *sql, struct hp_err *err);
/* pid of the agent holding DIR's lock; 0 if none, -1 if held but unreadable. */
long hp_agent_pid(const char *dir);

#endif
