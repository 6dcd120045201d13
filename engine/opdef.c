/* SPDX-License-Identifier: MIT */
/*
 * The op kinds: what the loop calls for a CQE of each (one file per kind
 * holds its preparation and its completion).
 */
#include "op.h"

const struct eng_op_kind eng_op_kinds[OP_KINDS] = {
	[OP_PLAIN] = { .name = "plain", .complete = eng_plain_complete },
	[OP_ACCEPT_MS] = { .name = "accept_multishot", .complete = eng_accept_complete,
			   .rearm = eng_accept_rearm },
	[OP_RECV_MS] = { .name = "recv_multishot", .complete = eng_recv_complete,
			 .rearm = eng_recv_rearm },
	[OP_SEND_ZC] = { .name = "send_zc", .complete = eng_send_zc_complete },
	[OP_EVENTFD] = { .name = "eventfd", .complete = eng_eventfd_complete },
	[OP_CANCEL_FD] = { .name = "cancel_fd", .complete = eng_cancel_fd_complete },
	[OP_POLL_OUT] = { .name = "poll_writable", .complete = eng_poll_out_complete,
			 .rearm = eng_poll_out_rearm },
	[OP_TIMER] = { .name = "timer", .complete = eng_timer_complete },
#ifdef RP_FAULTS
	[OP_FAULT_CANCEL] = { .name = "fault_cancel", .complete = eng_fault_cancel_complete },
#endif
};
