/* The configuration back to JSON, in the shapes of Firecracker's API bodies and config file. */
#include "config.h"

/* Sets key to a string, or to null when s is NULL. */
static int set_str(json_t *o, const char *key, const char *s)
{
	return json_object_set_new(o, key, s ? json_string(s) : json_null());
}

json_t *config_boot_source_json(const struct boot_source_config *b)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (set_str(o, "kernel_image_path", b->kernel_image_path) < 0 ||
	    (b->initrd_path && set_str(o, "initrd_path", b->initrd_path) < 0) ||
	    (b->boot_args && set_str(o, "boot_args", b->boot_args) < 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *config_machine_config_json(const struct machine_config *m)
{
	return json_pack("{s:I, s:I, s:b, s:b, s:s}", "vcpu_count", (json_int_t)m->vcpu_count,
			 "mem_size_mib", (json_int_t)m->mem_size_mib, "smt", m->smt,
			 "track_dirty_pages", m->track_dirty_pages, "huge_pages",
			 m->huge_pages == HUGE_PAGES_2M ? "2M" : "None");
}

json_t *config_logger_json(const struct logger_config *l)
{
	json_t *o = json_pack("{s:s, s:b, s:b}", "level", config_log_level_name(l->level),
			      "show_level", l->show_level, "show_log_origin", l->show_log_origin);

	if (o && l->log_path && set_str(o, "log_path", l->log_path) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *config_to_json(const struct vm_config *cfg)
{
	json_t *o = json_object();
	int rc = 0;

	if (!o)
		return NULL;
	if (cfg->has_boot_source)
		rc |= json_object_set_new(o, "boot-source", config_boot_source_json(&cfg->boot_source));
	rc |= json_object_set_new(o, "machine-config", config_machine_config_json(&cfg->machine));
	rc |= json_object_set_new(o, "drives", cfg->drives ? json_deep_copy(cfg->drives)
							 : json_array());
	rc |= json_object_set_new(o, "network-interfaces",
				  cfg->network_interfaces ? json_deep_copy(cfg->network_interfaces)
							  : json_array());
	if (cfg->vsock)
		rc |= json_object_set_new(o, "vsock", json_deep_copy(cfg->vsock));
	if (cfg->entropy)
		rc |= json_object_set_new(o, "entropy", json_deep_copy(cfg->entropy));
	if (cfg->logger.present)
		rc |= json_object_set_new(o, "logger", config_logger_json(&cfg->logger));
	if (cfg->metrics.metrics_path)
		rc |= json_object_set_new(o, "metrics", json_pack("{s:s}", "metrics_path",
								  cfg->metrics.metrics_path));
	if (cfg->serial.serial_out_path)
		rc |= json_object_set_new(o, "serial", json_pack("{s:s}", "serial_out_path",
								 cfg->serial.serial_out_path));
	if (rc) {
		json_decref(o);
		return NULL;
	}
	return o;
}
