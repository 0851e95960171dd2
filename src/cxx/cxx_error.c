/*
 * cxx_error.c — C side of the C/C++ boundary: turn an ImgsError filled by the
 * C++ core into ereport(ERROR). See cxx_error.h.
 */
#include "postgres.h"

#include "miscadmin.h"

#include "cxx/cxx_error.h"

char	   *imgs_injected_fault = NULL;

void
imgs_raise_cxx_error(const ImgsError *err)
{
	imgs_raise_cxx_error_in(err, NULL);
}

void
imgs_raise_cxx_error_in(const ImgsError *err, const char *what)
{
	const char *s = err->sqlstate;
	const char *message = err->message;
	int			code;

	if (strlen(s) != 5)
	{
		/* a failure the core did not describe is still a failure */
		s = IMGS_SQLSTATE_INTERNAL_ERROR;
		if (!message[0])
			message = "imgsearch C++ core failed without saying why";
	}
	code = MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);

	/* Let the pending interrupt raise its own, more precise error. */
	if (code == ERRCODE_QUERY_CANCELED)
		CHECK_FOR_INTERRUPTS();

	ereport(ERROR,
			(errcode(code),
			 what ? errmsg_internal("%s: %s", what, message) : errmsg_internal("%s", message),
			 err->detail[0] ? errdetail_internal("%s", err->detail) : 0));
	pg_unreachable();
}

bool
imgs_interrupt_pending(void)
{
	/*
	 * Not InterruptPending alone: most interrupts (a catchup signal, the idle
	 * statistics timeout, a barrier) are handled by CHECK_FOR_INTERRUPTS
	 * without an error, and a loop that stopped for one of them would fail a
	 * statement nobody canceled (an lsh CREATE INDEX did).
	 */
	return QueryCancelPending || ProcDiePending || CheckClientConnectionPending || ClientConnectionLost;
}
