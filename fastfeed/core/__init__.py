"""The sans-IO core: JSON lexer and Binance scanner (C headers), the straight-line plans,
the decoder (payload bytes in, rows out), the numpy rings and the row types.

Nothing here touches a socket or an event loop.
"""
