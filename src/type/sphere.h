/*
 * sphere.h — imgsearch_sphere, the query of a range search: a centre and a
 * radius (the composite type of sql/range.sql). `feat <<->> s` is
 * `feat <-> s.center <= s.radius`, `feat <<=>> s` is
 * `feat <=> s.center <= s.radius`: a closed ball, so radius 0 finds exact
 * duplicates. The SQL operators and the index scans read a sphere here, so
 * both refuse the same radii.
 */
#ifndef IMGS_SPHERE_H
#define IMGS_SPHERE_H

#include "type/imgfeat.h"

typedef struct ImgsSphere
{
	ImgFeat    *center;			/* detoasted */
	double		radius;			/* finite, >= 0 */
} ImgsSphere;

/* Errors (22023) unless radius is finite and not negative. */
extern void imgs_sphere_check_radius(double radius);

/*
 * Reads an imgsearch_sphere datum into *sphere; false when its centre or its
 * radius is NULL (no row is within it). Errors (22023) on a bad radius: a
 * ROW(...)::imgsearch_sphere does not pass through the constructor.
 */
extern bool imgs_sphere_read(Datum datum, ImgsSphere *sphere);

#endif							/* IMGS_SPHERE_H */
