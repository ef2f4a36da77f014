"""Board side of bnnhw (installed as ``bnnhw.boards``): from an accelerator to a board.

* :mod:`~bnnhw.boards.registry` -- board targets (``get_board``, ``list_boards``)
* :mod:`~bnnhw.boards.pll`, :mod:`~bnnhw.boards.clock` -- PLL calculators,
  ``plan_clock``, ``make_clock_domain``
* :mod:`~bnnhw.boards.shell` -- UART ``Shell`` (protocol in its docstring),
  ``SelfTestShell``, ``make_top``
* :mod:`~bnnhw.boards.protocol`, :mod:`~bnnhw.boards.host` -- framing and the host
  driver (``Board``, ``run_images``)
* :mod:`~bnnhw.boards.build` -- ``build_bitstream`` through YoWASP
* :mod:`~bnnhw.boards.uart`, :mod:`~bnnhw.boards.standin`,
  :mod:`~bnnhw.boards.simlink` -- UART cores, a stand-in accelerator, a simulated link
"""
