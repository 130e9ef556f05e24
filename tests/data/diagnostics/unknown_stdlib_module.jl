use nnn.{Linear}
