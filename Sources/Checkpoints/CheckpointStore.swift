import Marts
