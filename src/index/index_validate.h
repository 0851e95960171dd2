/*
 * index_validate.h — amvalidate for the imgsearch operator classes.
 */
#ifndef IMGS_INDEX_VALIDATE_H
#define IMGS_INDEX_VALIDATE_H

/*
 * Checks the operator family of an imgsearch opclass: ORDER BY operators
 * (opcintype, opcintype) -> float8 sorted by a float8 btree family, each at
 * the strategy of its metric, search operators only for the spheres
 * (opcintype, imgsearch_sphere) -> bool at strategies 4 (<<->>) and 5
 * (<<=>>) (index_scan.h), and no support functions. Reports each problem with INFO and returns false if any.
 */
extern bool imgs_validate_opclass(Oid opclassoid, const char *amname);

#endif							/* IMGS_INDEX_VALIDATE_H */
