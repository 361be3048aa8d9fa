"""The nodes a test case can put under test (its `sut`), which are also the catalog's top folders.

A module of its own, importing nothing: the CLI names them in its usage (`--sut`) before it has
loaded anything else, so that the reference network starts as early as the profile is read
(issue 15: importing the catalog's loader for them cost 0.3 s before anything could start).
"""

NODE_DIRS = ("3rdwws", "as", "wsf", "pcscf", "scscf", "flow")
