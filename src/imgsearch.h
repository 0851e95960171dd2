/*
 * imgsearch.h — module-wide declarations: GUC variables and their enums.
 *
 * Included by C glue only (it pulls in postgres.h types); the C++ core never
 * sees this file.
 */
#ifndef IMGSEARCH_H
#define IMGSEARCH_H

/* imgsearch.method: which way ORDER BY feat <op> q LIMIT k is answered. */
typedef enum ImgsMethod
{
	IMGS_METHOD_AUTO,			/* the planner chooses among usable indexes */
	IMGS_METHOD_ARGSORT,		/* sequential scan + sort: the exact baseline */
	IMGS_METHOD_FAISSFLAT,
	IMGS_METHOD_KDTREE,
	IMGS_METHOD_LSH
} ImgsMethod;

extern int	imgs_method;

extern void _PG_init(void);

#endif							/* IMGSEARCH_H */
