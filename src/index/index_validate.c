/*
 * index_validate.c — amvalidate for the imgsearch operator classes (see
 * index_validate.h).
 */
#include "postgres.h"

#include "access/amvalidate.h"
#include "access/htup_details.h"
#include "catalog/pg_amop.h"
#include "catalog/pg_amproc.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_type.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "index/index_scan.h"
#include "index/index_validate.h"

/* The operator each strategy number stands for. */
static const char *const strategy_operator[IMGS_NUM_STRATEGIES + 1] = {
	[IMGS_STRATEGY_L2] = "<->",
	[IMGS_STRATEGY_COSINE] = "<=>",
	[IMGS_STRATEGY_IP] = "<#>",
	[IMGS_STRATEGY_L2_SPHERE] = "<<->>",
	[IMGS_STRATEGY_COSINE_SPHERE] = "<<=>>",
	[IMGS_STRATEGY_L2_EXAMPLES] = "<->",
	[IMGS_STRATEGY_COSINE_EXAMPLES] = "<=>",
};

/* Whether strategy is a search (WHERE) operator's: a sphere's (index_scan.h). */
static bool
is_sphere_strategy(int strategy)
{
	return strategy == IMGS_STRATEGY_L2_SPHERE || strategy == IMGS_STRATEGY_COSINE_SPHERE;
}

/* The right operand type an ORDER BY strategy wants: the opclass type, or imgexamples for several examples. */
static bool
right_type_ok(int strategy, Oid righttype, Oid opcintype)
{
	HeapTuple	tup;
	bool		ok;

	if (!imgs_strategy_is_examples(strategy))
		return righttype == opcintype;
	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(righttype));
	if (!HeapTupleIsValid(tup))
		return false;
	ok = strcmp(NameStr(((Form_pg_type) GETSTRUCT(tup))->typname), "imgexamples") == 0;
	ReleaseSysCache(tup);
	return ok;
}

bool
imgs_validate_opclass(Oid opclassoid, const char *amname)
{
	HeapTuple	classtup;
	Form_pg_opclass classform;
	Oid			opfamilyoid;
	Oid			opcintype;
	const char *opclassname;
	CatCList   *oprlist;
	CatCList   *proclist;
	bool		result = true;

	classtup = SearchSysCache1(CLAOID, ObjectIdGetDatum(opclassoid));
	if (!HeapTupleIsValid(classtup))
		elog(ERROR, "cache lookup failed for operator class %u", opclassoid);
	classform = (Form_pg_opclass) GETSTRUCT(classtup);
	opfamilyoid = classform->opcfamily;
	opcintype = classform->opcintype;
	opclassname = NameStr(classform->opcname);

	proclist = SearchSysCacheList1(AMPROCNUM, ObjectIdGetDatum(opfamilyoid));
	for (int i = 0; i < proclist->n_members; i++)
	{
		Form_pg_amproc procform = (Form_pg_amproc) GETSTRUCT(&proclist->members[i]->tuple);

		ereport(INFO,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("operator family of operator class \"%s\" of access method %s contains support function %s, but the method uses none",
						opclassname, amname, format_procedure(procform->amproc))));
		result = false;
	}

	oprlist = SearchSysCacheList1(AMOPSTRATEGY, ObjectIdGetDatum(opfamilyoid));
	if (oprlist->n_members == 0)
	{
		ereport(INFO,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("operator family of operator class \"%s\" of access method %s has no ORDER BY operator",
						opclassname, amname)));
		result = false;
	}
	for (int i = 0; i < oprlist->n_members; i++)
	{
		Form_pg_amop oprform = (Form_pg_amop) GETSTRUCT(&oprlist->members[i]->tuple);
		int			strategy = oprform->amopstrategy;
		const char *problem = NULL;

		if (strategy < 1 || strategy > IMGS_NUM_STRATEGIES || strategy_operator[strategy] == NULL)
			problem = "an invalid strategy number";
		else if (is_sphere_strategy(strategy))
		{
			if (oprform->amoppurpose != AMOP_SEARCH)
				problem = "an ORDER BY purpose (a sphere operator is a search operator)";
			else if (oprform->amoplefttype != opcintype ||
					 !type_is_rowtype(oprform->amoprighttype) ||
					 !check_amop_signature(oprform->amopopr, BOOLOID,
										   oprform->amoplefttype, oprform->amoprighttype))
				problem = "a wrong signature (want opclass type, imgsearch_sphere -> boolean)";
			else if (strcmp(get_opname(oprform->amopopr), strategy_operator[strategy]) != 0)
				problem = "a strategy number reserved for another operator";
		}
		else if (oprform->amoppurpose != AMOP_ORDER)
			problem = "a search purpose (only ORDER BY is supported)";
		else if (oprform->amoplefttype != opcintype ||
				 !right_type_ok(strategy, oprform->amoprighttype, opcintype) ||
				 !check_amop_signature(oprform->amopopr, FLOAT8OID,
									   oprform->amoplefttype, oprform->amoprighttype) ||
				 !opfamily_can_sort_type(oprform->amopsortfamily, FLOAT8OID))
			problem = "a wrong signature (want opclass type, opclass type (imgexamples for strategies 6 and 7) -> float8, FOR ORDER BY float_ops)";
		else if (strcmp(get_opname(oprform->amopopr), strategy_operator[strategy]) != 0)
			problem = "a strategy number reserved for another operator";

		if (problem != NULL)
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("operator family of operator class \"%s\" of access method %s contains operator %s at strategy %d with %s",
							opclassname, amname, format_operator(oprform->amopopr), strategy, problem)));
			result = false;
		}
	}

	ReleaseCatCacheList(proclist);
	ReleaseCatCacheList(oprlist);
	ReleaseSysCache(classtup);
	return result;
}
