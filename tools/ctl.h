/* SPDX-License-Identifier: MIT */
/*
 * A running pool's control socket, from the client side (stats, set, top):
 * one snapshot of its figures, their Prometheus form, the knobs' table.
 */
#ifndef SP_TOOLS_CTL_H
#define SP_TOOLS_CTL_H

#include <stdbool.h>
#include <sys/types.h>

#define FIG_MAX 256
#define FIG_NAME 64

struct figure {
	char name[FIG_NAME];
	long value;
};

/* One merge domain's figures, in sp_domain_stat_name's order. */
#define DOM_FIGS 4
#define DOM_MAX 1024
struct domain_figs {
	unsigned domain;
	long v[DOM_FIGS];
};

/* What one `stats` request returned, in the server's order; `domains` too. */
struct snapshot {
	struct figure fig[FIG_MAX];
	unsigned n;
	struct domain_figs dom[DOM_MAX]; /* ascending; the first DOM_MAX */
	unsigned nr_dom;
	bool more_dom; /* the pool has more domains than DOM_MAX */
	double wall; /* CLOCK_REALTIME seconds when read */
	double mono; /* CLOCK_MONOTONIC seconds, for rates */
};

struct ctl {
	const char *cmd; /* "stats", "set", "top": messages say "samepage CMD: " */
	const char *socket;
	const char *pool; /* the label: --pool, or the socket's name without .sock */
	pid_t pid; /* the program serving the socket (SO_PEERCRED); 0 unknown */
	bool defer_errors; /* only into err (top prints it once off its screen) */
	char err[512]; /* the last error, "samepage CMD: ...\n" */
	char pool_buf[108];
};

/* Say what went wrong, as "samepage CMD: ..." on stderr (and into c->err). */
void ctl_error(struct ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The pool label for c->socket unless c->pool is set already. */
void ctl_name_pool(struct ctl *c);
/* One snapshot; -1 having printed why (exit status 1). */
int ctl_stats(struct ctl *c, struct snapshot *s);
bool snap_get(const struct snapshot *s, const char *name, long *value);
/*
 * The figures of every merge domain that has any (`domains`), into s->dom;
 * a server that does not know the request gives none. -1 having said why.
 */
int ctl_domains(struct ctl *c, struct snapshot *s);
/* One domain's figures (`domain N`) into s->fig; -1 having said why. */
int ctl_domain(struct ctl *c, unsigned domain, struct snapshot *s);

/* run.c: the socket of PID under `samepage run`; NULL having said why. */
const char *run_pid_socket(const char *cmd, const char *arg);

/* prom.c: the snapshot in the Prometheus text format. */
void print_prometheus(const struct ctl *c, const struct snapshot *s);
/* Only the per-domain families, from s->dom. */
void print_prometheus_domains(const struct ctl *c, const struct snapshot *s);

#endif
