"""Sandboxed children (``fork.Sandbox``): ``policy`` makes the rules in the parent,
``inside`` enters them in the child, ``kernel`` is what Linux enforces (Landlock,
seccomp, ``no_new_privs``), and ``plain`` the data a sandboxed child sends back,
decoded without running its code."""
