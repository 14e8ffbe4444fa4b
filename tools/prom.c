/* SPDX-License-Identifier: MIT */
/*
 * `samepage stats --prometheus`: a pool's figures in the Prometheus text
 * format, as node_exporter's textfile collector reads them.
 *
 * Names follow Prometheus's conventions and node_exporter's KSM metrics
 * (node_ksmd_*): what only grows is a counter ending in _total, bytes end in
 * _bytes, time is in seconds, and no gauge ends in _total or _count (the
 * figures frames_total and max_map_count are renamed for that). Every metric
 * carries the label pool="NAME"; figures of one merge domain will carry
 * domain="N" as well.
 *
 * Each figure the server reports is described in the table below. One that
 * is not (a newer server) is still printed, as an untyped metric with a
 * HELP that says so: the tests fail on that, so the table keeps up.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

struct metric {
	const char *figure; /* as `stats` names it */
	const char *name; /* samepage_NAME */
	const char *type; /* "counter" or "gauge" */
	double scale; /* 0: the value as is */
	const char *help;
};

static const struct metric metrics[] = {
	/* KSM knobs, as /sys/kernel/mm/ksm. */
	{ "run", "run", "gauge", 0,
	  "Knob run: 0 ksmd stopped, 1 running, 2 everything unmerged and stopped." },
	{ "pages_to_scan", "pages_to_scan", "gauge", 0, "Knob pages_to_scan: pages per batch." },
	{ "sleep_millisecs", "sleep_seconds", "gauge", 1e-3,
	  "Knob sleep_millisecs, in seconds: ksmd's sleep between batches." },
	{ "max_page_sharing", "max_page_sharing", "gauge", 0,
	  "Knob max_page_sharing: most pages sharing one KSM frame." },
	{ "merge_across_nodes", "merge_across_nodes", "gauge", 0,
	  "Knob merge_across_nodes: 1 if pages of different nodes merge." },
	{ "use_zero_pages", "use_zero_pages", "gauge", 0,
	  "Knob use_zero_pages: 1 if zero pages map the kernel's zero page." },
	{ "smart_scan", "smart_scan", "gauge", 0,
	  "Knob smart_scan: 1 if pages that stay unique are scanned less often." },
	{ "advisor_mode", "advisor_mode", "gauge", 0,
	  "Knob advisor_mode: 0 none, 1 scan-time (pages_to_scan set by the advisor)." },
	{ "advisor_target_scan_time", "advisor_target_scan_time_seconds", "gauge", 0,
	  "Knob advisor_target_scan_time: seconds a full scan should take." },
	{ "advisor_max_cpu", "advisor_max_cpu_ratio", "gauge", 1e-2,
	  "Knob advisor_max_cpu, as a ratio: most CPU ksmd may use under the advisor." },
	{ "advisor_min_pages_to_scan", "advisor_min_pages_to_scan", "gauge", 0,
	  "Knob advisor_min_pages_to_scan: the pages_to_scan the advisor starts from." },
	{ "advisor_max_pages_to_scan", "advisor_max_pages_to_scan", "gauge", 0,
	  "Knob advisor_max_pages_to_scan: the advisor's highest pages_to_scan." },
	/* KSM counters. */
	{ "pages_shared", "pages_shared", "gauge", 0,
	  "KSM frames in use: distinct merged contents." },
	{ "pages_sharing", "pages_sharing", "gauge", 0,
	  "Pages mapped onto KSM frames beyond the first of each: pages merging saved." },
	{ "pages_unshared", "pages_unshared", "gauge", 0,
	  "Mergeable pages scanned that are unique so far." },
	{ "pages_volatile", "pages_volatile", "gauge", 0,
	  "Pages changing too fast to merge, held back." },
	{ "pages_scanned", "pages_scanned_total", "counter", 0, "Pages ksmd scanned." },
	{ "full_scans", "full_scans_total", "counter", 0,
	  "Complete passes over the mergeable pages." },
	{ "stable_node_chains", "stable_node_chains", "gauge", 0,
	  "Chains of KSM frames of one content (more sharers than max_page_sharing)." },
	{ "stable_node_dups", "stable_node_dups", "gauge", 0,
	  "KSM frames that are members of chains." },
	{ "ksm_zero_pages", "ksm_zero_pages", "gauge", 0,
	  "Zero pages mapped to the kernel's zero page (use_zero_pages=1)." },
	{ "general_profit", "general_profit_bytes", "gauge", 0,
	  "Bytes merging saved, less the bytes of samepage's KSM metadata." },
	{ "pages_skipped", "pages_skipped_total", "counter", 0, "Page visits smart_scan skipped." },
	/* Pool figures (sp_stat). */
	{ "frames_total", "frames_online", "gauge", 0, "Frames (4 KiB pages) online." },
	{ "frames_free", "frames_free", "gauge", 0, "Frames online and free." },
	{ "frames_used", "frames_used", "gauge", 0, "Frames online and in use." },
	{ "frames_ksm", "frames_ksm", "gauge", 0, "KSM frames (as pages_shared)." },
	{ "bytes_resident", "resident_bytes", "gauge", 0,
	  "Memory the pool holds from the operating system." },
	{ "sections_online", "sections_online", "gauge", 0, "Sections online." },
	{ "swap_slots_used", "swap_slots_used", "gauge", 0,
	  "Swap slots in use (a KSM frame counts once)." },
	{ "fault_mode", "fault_mode", "gauge", 0,
	  "Fault mode: 1 userfaultfd, 2 mprotect+SIGSEGV." },
	{ "faults_cow", "faults_cow_total", "counter", 0, "Copy-on-write faults on merged pages." },
	{ "faults_swapin", "faults_swapin_total", "counter", 0,
	  "Pages and KSM frames swapped back in." },
	{ "pages_migrated", "pages_migrated_total", "counter", 0,
	  "Frames migrated (hot-remove, memory policy)." },
	{ "faults_wp", "faults_wp_total", "counter", 0,
	  "Writes that waited for a page samepage was changing (userfaultfd mode)." },
	{ "max_map_count", "max_mappings", "gauge", 0,
	  "The system's vm.max_map_count, as read when the pool was created." },
	{ "map_count", "mappings", "gauge", 0, "Mappings (vmas) the pool holds." },
	{ "map_limit", "mappings_limit", "gauge", 0, "Mappings the pool may use." },
	{ "merges_deferred", "merges_deferred_total", "counter", 0,
	  "Merges not done for lack of mappings." },
	{ "map_failures", "map_failures_total", "counter", 0,
	  "Mappings that failed for lack of them (vm.max_map_count), handled." },
	{ "pages_unmapped", "pages_unmapped_total", "counter", 0,
	  "Pages the program unmapped behind samepage's back." },
	{ "swap_errors", "swap_errors_total", "counter", 0, "Swap slots found damaged." },
	{ "swap_pages_out", "swap_pages_out_total", "counter", 0, "Pages written to swap." },
	{ "faults_alloc", "faults_alloc_total", "counter", 0,
	  "Frames given to pages at their first touch." },
	{ "reclaim_scanned", "reclaim_scanned_total", "counter", 0,
	  "Pages the reclaim clock looked at." },
	{ "reclaim_pages", "reclaim_pages_total", "counter", 0, "Frames reclaim freed." },
	{ "reclaim_direct", "reclaim_direct_total", "counter", 0,
	  "Faults that had to reclaim for themselves." },
	{ "reclaim_wakeups", "reclaim_wakeups_total", "counter", 0,
	  "Wake-ups of the reclaim thread." },
	{ "pages_committed", "pages_committed", "gauge", 0,
	  "Pages of all regions, which frames and swap together must hold." },
	{ "swap.low_watermark", "swap_low_watermark_frames", "gauge", 0,
	  "Knob swap.low_watermark in force: free frames below which reclaim starts." },
	{ "swap.high_watermark", "swap_high_watermark_frames", "gauge", 0,
	  "Knob swap.high_watermark in force: free frames at which reclaim stops." },
};

/* A label value: backslash, double quote and newline escaped. */
static void print_label(const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			putchar('\\');
		if (*v == '\n')
			fputs("\\n", stdout);
		else
			putchar(*v);
	}
}

static const struct metric *find_metric(const char *figure)
{
	for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++)
		if (!strcmp(metrics[i].figure, figure))
			return &metrics[i];
	return NULL;
}

void print_prometheus(const struct ctl *c, const struct snapshot *s)
{
	for (unsigned i = 0; i < s->n; i++) {
		const struct figure *f = &s->fig[i];
		const struct metric *m = find_metric(f->name);
		char name[FIG_NAME + 16];

		if (m) {
			snprintf(name, sizeof(name), "samepage_%s", m->name);
			printf("# HELP %s %s\n# TYPE %s %s\n", name, m->help, name, m->type);
		} else { /* a figure this samepage does not know: honest about it */
			snprintf(name, sizeof(name), "samepage_%s", f->name);
			for (char *p = name; *p; p++)
				if (!(*p >= 'a' && *p <= 'z') && !(*p >= '0' && *p <= '9'))
					*p = '_';
			printf("# HELP %s Figure %s, undescribed in this samepage.\n"
			       "# TYPE %s untyped\n",
			       name, f->name, name);
		}
		printf("%s{pool=\"", name);
		print_label(c->pool);
		if (m && m->scale)
			printf("\"} %.10g\n", (double)f->value * m->scale);
		else
			printf("\"} %ld\n", f->value);
	}
}

/* Per merge domain, as /proc/PID/ksm_stat per process: labelled domain="N". */
static const struct metric domain_metrics[DOM_FIGS] = {
	{ "ksm_rmap_items", "domain_ksm_rmap_items", "gauge", 0,
	  "Pages of the merge domain that KSM tracks (the kernel's rmap_items)." },
	{ "ksm_zero_pages", "domain_ksm_zero_pages", "gauge", 0,
	  "Pages of the merge domain merged with the zero page." },
	{ "ksm_merging_pages", "domain_ksm_merging_pages", "gauge", 0,
	  "Pages of the merge domain mapped onto KSM frames." },
	{ "ksm_process_profit", "domain_ksm_profit_bytes", "gauge", 0,
	  "Bytes merging saved the merge domain, less its KSM metadata." },
};

void print_prometheus_domains(const struct ctl *c, const struct snapshot *s)
{
	if (!s->nr_dom)
		return;
	for (unsigned i = 0; i < DOM_FIGS; i++) {
		const struct metric *m = &domain_metrics[i];

		printf("# HELP samepage_%s %s\n# TYPE samepage_%s %s\n", m->name, m->help, m->name,
		       m->type);
		for (unsigned k = 0; k < s->nr_dom; k++) {
			printf("samepage_%s{pool=\"", m->name);
			print_label(c->pool);
			printf("\",domain=\"%u\"} %ld\n", s->dom[k].domain, s->dom[k].v[i]);
		}
	}
}
