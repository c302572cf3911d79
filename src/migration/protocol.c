#include "migration/protocol.h"

#include <string.h>

const char *mig_record_name(uint32_t type)
{
	switch (type) {
	case MIG_REC_HELLO: return "HELLO";
	case MIG_REC_DEVICE: return "DEVICE";
	case MIG_REC_VCPU: return "VCPU";
	case MIG_REC_RAM_PAGES: return "RAM_PAGES";
	case MIG_REC_ROUND_END: return "ROUND_END";
	case MIG_REC_CHANNEL_SYNC: return "CHANNEL_SYNC";
	case MIG_REC_RAM_AHEAD: return "RAM_AHEAD";
	case MIG_REC_STATE_END: return "STATE_END";
	case MIG_REC_POSTCOPY_MISSING: return "POSTCOPY_MISSING";
	case MIG_REC_POSTCOPY_PREPARE: return "POSTCOPY_PREPARE";
	case MIG_REC_COMMIT: return "COMMIT";
	case MIG_REC_PAGE: return "PAGE";
	case MIG_REC_PUSH_END: return "PUSH_END";
	case MIG_REC_PUSH_ZERO: return "PUSH_ZERO";
	case MIG_REC_PUSH_MARK: return "PUSH_MARK";
	case MIG_REC_PAGE_REQUEST: return "PAGE_REQUEST";
	case MIG_REC_PAGES_DONE: return "PAGES_DONE";
	case MIG_REC_RECV_BITMAP: return "RECV_BITMAP";
	case MIG_REC_PAGES_HAVE: return "PAGES_HAVE";
	case MIG_REC_ACCEPT: return "ACCEPT";
	case MIG_REC_REFUSE: return "REFUSE";
	case MIG_REC_READY: return "READY";
	case MIG_REC_RUNNING: return "RUNNING";
	case MIG_REC_ERROR: return "ERROR";
	case MIG_REC_ROUND_ACK: return "ROUND_ACK";
	default: return rec_type_optional(type) ? "unknown optional" : "unknown";
	}
}

bool mig_record_known(uint32_t type)
{
	return strncmp(mig_record_name(type), "unknown", 7) != 0;
}

const char *mig_role_name(uint32_t role)
{
	switch (role) {
	case MIG_ROLE_MAIN: return "main";
	case MIG_ROLE_RETURN_PATH: return "return-path";
	case MIG_ROLE_PAGE_REQUESTS: return "page-requests";
	case MIG_ROLE_BULK_PAGES: return "bulk-pages";
	case MIG_ROLE_POSTCOPY_PUSH: return "postcopy-push";
	default: return "unknown";
	}
}
