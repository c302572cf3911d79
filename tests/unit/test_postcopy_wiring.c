/*
 * How a post-copy or hybrid migration is asked for: migrate's "mode",
 * "precopy-rounds", "precopy-ms" (control_migrate.c) and
 * migrate-start-postcopy with no migration (source.c), without KVM.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "control/control_migrate.h"
#include "migration/migration.h"
#include "util/log.h"
#include "vmm/vm.h"

struct mode_row {
	const char *args;
	int rc;
	enum mig_mode mode;
	uint64_t rounds, ms;
	const char *msg;
};

static const struct mode_row mode_rows[] = {
	{ "{}", 0, MIG_MODE_PRECOPY, MIG_HYBRID_ROUNDS_DEFAULT, MIG_HYBRID_MS_DEFAULT, NULL },
	{ "{\"mode\":\"precopy\"}", 0, MIG_MODE_PRECOPY, MIG_HYBRID_ROUNDS_DEFAULT,
	  MIG_HYBRID_MS_DEFAULT, NULL },
	{ "{\"mode\":\"postcopy\"}", 0, MIG_MODE_POSTCOPY, MIG_HYBRID_ROUNDS_DEFAULT,
	  MIG_HYBRID_MS_DEFAULT, NULL },
	{ "{\"mode\":\"hybrid\"}", 0, MIG_MODE_HYBRID, MIG_HYBRID_ROUNDS_DEFAULT,
	  MIG_HYBRID_MS_DEFAULT, NULL },
	{ "{\"mode\":\"hybrid\",\"precopy-rounds\":5,\"precopy-ms\":250}", 0,
	  MIG_MODE_HYBRID, 5, 250, NULL },
	{ "{\"mode\":\"hybrid\",\"precopy-ms\":1}", 0, MIG_MODE_HYBRID,
	  MIG_HYBRID_ROUNDS_DEFAULT, 1, NULL },
	/* refused, naming what is wrong */
	{ "{\"mode\":\"copy\"}", -EINVAL, 0, 0, 0,
	  "Parameter 'mode' expects 'precopy', 'postcopy' or 'hybrid', not 'copy'" },
	{ "{\"precopy-rounds\":3}", -EINVAL, 0, 0, 0,
	  "Parameter 'precopy-rounds' goes with mode 'hybrid'" },
	{ "{\"mode\":\"precopy\",\"precopy-ms\":100}", -EINVAL, 0, 0, 0,
	  "Parameter 'precopy-ms' goes with mode 'hybrid' (it limits the pre-copy "
	  "before post-copy), not with mode 'precopy'" },
	{ "{\"mode\":\"postcopy\",\"precopy-rounds\":1}", -EINVAL, 0, 0, 0,
	  "not with mode 'postcopy'" },
	{ "{\"mode\":\"hybrid\",\"precopy-rounds\":0}", -EINVAL, 0, 0, 0,
	  "Parameter 'precopy-rounds' expects a value between 1 and" },
	{ "{\"mode\":\"hybrid\",\"precopy-ms\":0}", -EINVAL, 0, 0, 0,
	  "Parameter 'precopy-ms' expects a value between 1 and" },
};

Test(postcopy_wiring, migrate_mode_arguments)
{
	for (size_t i = 0; i < sizeof(mode_rows) / sizeof(mode_rows[0]); i++) {
		const struct mode_row *w = &mode_rows[i];
		json_error_t jerr;
		json_t *a = json_loads(w->args, 0, &jerr);
		char err[ERR_MAX] = "";
		struct mig_params p, before;

		cr_assert_not_null(a, "%s", w->args);
		json_object_set_new(a, "uri", json_string("tcp:127.0.0.1:4444"));
		mig_params_default(&p);
		before = p;
		int rc = control_check_args(control_migrate_args, a, err);
		cr_assert_eq(rc, 0, "row %zu: the spec refuses %s: %s", i, w->args, err);
		rc = control_mig_mode_merge(&p, a, err);
		cr_expect_eq(rc, w->rc, "row %zu (%s): %d %s", i, w->args, rc, err);
		if (!rc) {
			cr_expect_eq(p.mode, w->mode, "row %zu", i);
			cr_expect_eq(p.precopy_rounds, w->rounds, "row %zu", i);
			cr_expect_eq(p.precopy_ms, w->ms, "row %zu", i);
		} else {
			cr_expect(strstr(err, w->msg), "row %zu: '%s' lacks '%s'", i, err, w->msg);
			cr_expect(p.mode == before.mode && p.precopy_rounds == before.precopy_rounds &&
				  p.precopy_ms == before.precopy_ms, "row %zu: changed on error", i);
		}
		json_decref(a);
	}
}

Test(postcopy_wiring, mode_names_round_trip)
{
	for (int m = MIG_MODE_PRECOPY; m <= MIG_MODE_HYBRID; m++) {
		enum mig_mode back;
		cr_assert_eq(mig_mode_parse(mig_mode_name((enum mig_mode)m), &back), 0);
		cr_assert_eq((int)back, m);
	}
	enum mig_mode x;
	cr_assert_eq(mig_mode_parse("Postcopy", &x), -EINVAL);
	cr_assert_eq(mig_mode_parse(NULL, &x), -EINVAL);
	cr_assert_str_eq(mig_status_name(MIG_STATUS_POSTCOPY_ACTIVE), "postcopy-active");
}

/* On a VM that is not migrating: a clear refusal, nothing started. */
Test(postcopy_wiring, start_postcopy_without_a_migration_is_refused)
{
	struct vm_config cfg = { .ram_size = 2u << 20, .vcpus = 1, .serial = "none",
				 .heartbeat = "none" };
	char err[ERR_MAX] = "";
	struct vm *vm = NULL;

	log_set_level(LOG_ERROR);
	cr_assert_eq(vm_create_offline(&vm, &cfg, err), 0, "%s", err);
	cr_assert_eq(migration_start_postcopy(vm, err), -EINVAL);
	cr_assert(strstr(err, "no migration is in progress"), "%s", err);
	json_t *q = migration_query(vm);
	cr_assert_str_eq(json_string_value(json_object_get(q, "status")), "none");
	json_decref(q);
	migration_destroy(vm);
	vm_destroy(vm);
}
